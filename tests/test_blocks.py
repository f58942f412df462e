from rlmx.engine.blocks import parse_response
from rlmx.engine.truncate import truncate_output


def test_first_repl_block_is_taken():
    text = "Plan.\n```repl\nx = 1\nprint(x)\n```\nthen\n```repl\ny = 2\n```"
    p = parse_response(text)
    assert p.code == "x = 1\nprint(x)"
    assert p.final_text is None and p.final_var is None
    assert "Plan." in p.prose and "x = 1" not in p.prose


def test_python_block_accepted_only_without_repl_block():
    assert parse_response("```python\na = 1\n```").code == "a = 1"
    assert parse_response("```python\na = 1\n```\n```repl\nb = 2\n```").code == "b = 2"


def test_prose_only_has_no_code_and_no_final():
    p = parse_response("I think the answer is in the second document.")
    assert p.code is None and p.final_text is None and p.final_var is None


def test_prose_final_and_final_var():
    assert parse_response("Done.\nFINAL(42 addresses)").final_text == "42 addresses"
    assert parse_response('FINAL("quoted answer")').final_text == "quoted answer"
    assert parse_response("FINAL_VAR(result)").final_var == "result"
    # FINAL inside a code block is the code's business, not prose
    p = parse_response("```repl\nFINAL('x')\n```")
    assert p.code == "FINAL('x')" and p.final_text is None


def test_unterminated_block_runs_to_end():
    assert parse_response("```repl\nprint(1)").code == "print(1)"


def test_empty_block_is_no_code():
    assert parse_response("```repl\n\n```").code is None


def test_truncation_keeps_head_and_tail_with_marker():
    text = "".join(f"{i:05d}\n" for i in range(10_000))
    out = truncate_output(text, 1000)
    assert out.startswith(text[:500]) and out.endswith(text[-500:])
    assert f"{len(text) - 1000:,} of {len(text):,} characters cut" in out
    assert truncate_output("short", 1000) == "short"

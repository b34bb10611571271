"""Runs the test peers (test/peer/*.py) one after another in one long-lived Python, for test/helpers.ts's
PythonPeer: torch and transformers are imported once per suite instead of once per call (~5 s each).

Each request is one JSON line on stdin, {"script": PATH, "args": [...]}: the script runs as __main__ with
sys.argv = [PATH, *args] (runpy, a fresh namespace each time; imported modules stay loaded), its stdout
captured. The answer is one JSON line on the real stdout: {"out": captured} when it returned (or exited 0),
{"out": captured, "error": why} when it raised or exited non-zero. End of stdin ends the process.
"""
import contextlib
import io
import json
import runpy
import sys
import traceback

reply_to = sys.stdout
for line in sys.stdin:
    request = json.loads(line)
    captured = io.StringIO()
    sys.argv = [request["script"], *request["args"]]
    reply = {}
    try:
        with contextlib.redirect_stdout(captured):
            runpy.run_path(request["script"], run_name="__main__")
    except SystemExit as e:
        if e.code not in (None, 0):
            reply["error"] = f"exit {e.code}" if isinstance(e.code, int) else str(e.code)
    except BaseException:  # noqa: B036 - the test shows whatever the peer raised
        reply["error"] = traceback.format_exc()
    reply["out"] = captured.getvalue()
    reply_to.write(json.dumps(reply) + "\n")
    reply_to.flush()

import time
from conftest import make_db, PR_NUMBER

def test_smoke(runner, gh):
    ws = runner.workspace
    make_db(ws / ".tokenspy/usage.db", scale=2.0)
    make_db(ws / "base.db", scale=1.0, commit="1"*40)
    runner.pull_request()
    t = time.time()
    r = runner.run({"baseline-db": "base.db"})
    print("took", time.time() - t)
    print(r.returncode, r.stdout[-3000:], r.stderr[-3000:])
    print(r.outputs)
    print(r.summary[-1500:])
    print([ (q.method, q.path, q.status) for q in gh.log])

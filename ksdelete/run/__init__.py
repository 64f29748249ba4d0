"""One store's run, as plain parts (the Executor in ksdelete/executor.py composes them):

    base.py        options, targets, the run's own exceptions, what a refusal says was done
    guard.py       the store's lock and the cancel request beside it (the brake)
    store.py       Services (shared by every store of an invocation) and StoreRun (one store)
    act.py         journalled mutations, the marks on keys, re-planning on a snapshot
    remedy.py      a refusal made safe: cancel the deletion of keys someone tried to use
    survey.py      the snapshot with marks, evidence and the watch; what AWS leaves behind
    report.py      the journal's Report lines: what an unattended run need not say again
    connection.py  step handlers of the store: connect, disconnect, delete, verify
    steps.py       step handlers of the keys (disable, soak, schedule, wait) and the table
    converge.py    decide, confirm and converge: the plan applied step by step
"""

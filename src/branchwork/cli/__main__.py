"""`python -m branchwork.cli ...`: the `branchwork` command where its script is not on PATH
(the dashboard starts resumes this way, with the interpreter it runs on)."""

from branchwork.cli import main

main()

"""The web dashboard: `branchwork dashboard` serves it (FastAPI + uvicorn, the `ui` extra).

`app.create_app` builds the server: the JSON API (`api`; `live` tells its pages when a run
changed), the pages shipped in `static/` (no asset is fetched from the network), and the
guard in front of both (`security`). It reads the store through `metadata.run_pages` and
friends, paged and aggregated, so a run of 10,000 steps costs one page of rows per answer.
Nothing here is imported by `import branchwork`.
"""

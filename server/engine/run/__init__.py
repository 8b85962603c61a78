"""Running one node, wherever it runs: the task a node becomes, the code that runs it, and the executors
(local thread pool, Dask) that decide where. The runner (runner.py) drives them and knows none of the details."""

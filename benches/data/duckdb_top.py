"""The benchmark's query in DuckDB (2 threads): the reference for wvflow's data path."""
import csv
import os
import sys

import duckdb

con = duckdb.connect()
con.execute("SET threads = 2")
rows = con.execute(
    f"""SELECT customer, count(*) AS orders, sum(amount) AS revenue
        FROM read_csv_auto('{sys.argv[1]}')
        WHERE status = 'paid' AND amount > 100
        GROUP BY customer ORDER BY revenue DESC LIMIT 100"""
).fetchall()
assert len(rows) == 100, len(rows)
# `ANSWER=1`: the rows as CSV, for the benchmark to compare the engines' answers.
if os.environ.get("ANSWER"):
    csv.writer(sys.stdout).writerows(rows)

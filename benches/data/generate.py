"""Writes the orders CSV of the data-path benchmark: ROWS rows, the same bytes on every run."""
import random
import sys

rows, path = int(sys.argv[1]), sys.argv[2]
rng = random.Random(1)
regions = ["north", "south", "east", "west", "central"]
statuses = ["paid", "refunded", "open"]
with open(path, "w") as out:
    out.write("order_id,customer,region,amount,status\n")
    for i in range(rows):
        out.write(
            f"{i},c{rng.randrange(20000)},{rng.choice(regions)},"
            f"{rng.randrange(1, 100000) / 100},{rng.choice(statuses)}\n"
        )

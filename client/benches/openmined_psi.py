"""OpenMined PSI (openmined-psi 2.0.6) on the key lists the Pluis
comparison bench writes: one process, server and client, as in the
library's own examples (ECDH over P-256, raw data structure, the
intersection revealed to the client).

Usage: python3 openmined_psi.py CLIENT_KEYS SERVER_KEYS
Prints one JSON line: {"seconds": wall time of setup, request, response
and intersection, "intersection": size}.
"""

import json
import sys
import time

try:
    import private_set_intersection.python as psi
except ImportError:
    sys.exit(
        "openmined-psi is not installed for this Python; "
        "run: python3 -m pip install openmined-psi==2.0.6 "
        "(or point PLUIS_OPENMINED_PYTHON at a Python that has it)"
    )


def read(path):
    with open(path, encoding="ascii") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def main():
    client_items = read(sys.argv[1])
    server_items = read(sys.argv[2])
    started = time.perf_counter()
    client = psi.client.CreateWithNewKey(True)
    server = psi.server.CreateWithNewKey(True)
    setup = server.CreateSetupMessage(
        1e-9, len(client_items), server_items, psi.DataStructure.RAW
    )
    request = client.CreateRequest(client_items)
    response = server.ProcessRequest(request)
    intersection = client.GetIntersection(setup, response)
    seconds = time.perf_counter() - started
    print(json.dumps({
        "seconds": seconds,
        "intersection": len(intersection),
        "version": psi.__version__,
    }))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Executes notebooks cell by cell (nbclient, the engine of `nbconvert --execute`) and, when a cell fails,
prints that cell and its stderr. tslab reports a cell's error on the stderr stream, with an empty error
name and value, so nbconvert's own message says only '<Error>: '."""
import os
import sys

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def run(path, timeout=900):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name=nb.metadata.get("kernelspec", {}).get("name", "tslab"),
                            resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}})
    try:
        client.execute()
        return True
    except CellExecutionError:
        for i, cell in enumerate(nb.cells):
            for out in cell.get("outputs", []):
                if (out.get("output_type") == "stream" and out.get("name") == "stderr") or out.get("output_type") == "error":
                    print(f"{path}: cell {i} failed:\n{cell.source}\n---\n{out.get('text') or out.get('evalue')}", file=sys.stderr)
        return False


if __name__ == "__main__":
    sys.exit(0 if all([run(p) for p in sys.argv[1:]]) else 1)

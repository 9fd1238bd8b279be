"""Strata: see and work with container image storage, without a daemon and without root.

Layering (what ARCHITECTURE.md draws, as the code has it; ``tests/test_structure.py``
fails on any import that points up or goes round in a circle between these parts)::

    __main__, launcher   the entry point: the window (launcher → gui) or a verb (cli)
    cli, gui             the two front ends; they never import each other
    api                  the operations a user names; the GUI's one typed seam (``Strata``)
    builder              Dockerfile → steps, cache keys, the executor (uses registry for FROM)
    registry             OCI distribution: pull, push, auth; stands on store
    store                metadata, layers and their index, images, containers, volumes, archives
    runtime              namespaces, mounts, processes; every fork through runtime.forking
    errors, fsutil, digest, bulk, timestamps, holds, filelimits, jsoninput   shared leaves
"""

__version__ = "0.1.0"

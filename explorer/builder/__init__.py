"""Dockerfile builds: parsing, build context, cache and execution.

The front end lives in ``parser`` (text → nodes, BuildKit's grammar), ``shell`` (word
expansion), ``instructions`` (typed instructions and stages) and ``dockerignore`` (which
context files a build sees). None of them touches the store or runs anything.
"""

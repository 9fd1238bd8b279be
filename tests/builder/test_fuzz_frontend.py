"""Property-based fuzzing of the Dockerfile front end: any text either parses or fails
with a DockerfileError carrying a line number, never anything else; and diagnostics()
never raises. Bounded so it fits in CI."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer.builder.parser import parse
from explorer.builder.shell import expand_word
from explorer.builder.stages import diagnostics, parse_stages
from explorer.errors import StrataError

KEYWORDS = [
    "FROM",
    "RUN",
    "COPY",
    "ADD",
    "ENV",
    "ARG",
    "WORKDIR",
    "USER",
    "LABEL",
    "EXPOSE",
    "VOLUME",
    "CMD",
    "ENTRYPOINT",
    "SHELL",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "ONBUILD",
    "MAINTAINER",
    "BOGUS",
]
PIECES = [
    "busybox",
    "AS",
    "base",
    "--from=base",
    "--chown=1:1",
    "--mount=type=cache,target=/c",
    "$X",
    "${X:-d}",
    "${X?e}",
    '["a", "b"]',
    '["bad',
    "\\",
    "\n",
    " ",
    "<<EOF",
    "EOF",
    "#",
    "# escape=`",
    "`",
    "'q'",
    '"q"',
    "=",
    "a=b",
    "k v",
    "--interval=5s",
    "CMD",
    "NONE",
    "scratch",
    "/x",
    "../y",
    "*.go",
    "**",
]

lines = st.lists(
    st.tuples(st.sampled_from(KEYWORDS), st.lists(st.sampled_from(PIECES), max_size=6)).map(
        lambda t: t[0] + " " + " ".join(t[1])
    ),
    min_size=0,
    max_size=12,
).map("\n".join)
noise = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(lines, noise, st.tuples(lines, noise).map(lambda t: t[0] + t[1])))
def test_front_end_only_fails_with_dockerfile_errors(text: str) -> None:
    try:
        parsed = parse(text)
        parse_stages(parsed)
    except StrataError as e:
        assert str(e)
    for d in diagnostics(text):
        assert d.line >= 0


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.dictionaries(st.sampled_from(["X", "Y", "PWD"]), st.text(max_size=10)))
def test_word_expansion_only_fails_with_strata_errors(word: str, env: dict[str, str]) -> None:
    try:
        expand_word(word, env)
    except StrataError:
        pass

"""Dockerfile builds: parsing, build context, cache and execution.

The front end lives in ``parser`` (text → nodes, BuildKit's grammar), ``shell`` (word
expansion), ``instructions`` (typed instructions and stages) and ``dockerignore`` (which
context files a build sees). None of them touches the store or runs anything.

Which Docker Strata follows
===========================

Docker has two builders and they disagree. BuildKit has been Docker's default builder since
Docker 23 and Strata writes BuildKit's history, so where they differ Strata follows
**current** BuildKit: its documentation (frontend/dockerfile/docs/reference.md) and its own
tests (frontend/dockerfile/dockerfile_*_test.go). The BuildKit inside Docker 20.10 is old;
where it disagrees with current BuildKit, current wins. The legacy builder's way is kept
only where it is safer and BuildKit's is a known problem. Every row is pinned by the
differential cases named in brackets (tests/builder/cases/), built by Strata and, where
Docker runs, by both of Docker 20.10's builders; a case's ``docker`` note says which builder
is expected to differ and why.

Config, stages and the cache
----------------------------

.. list-table::
   :header-rows: 1

   * - behaviour [cases]
     - legacy builder
     - BuildKit
     - Strata, and why
   * - WORKDIR under USER: who owns the directories it makes [config/workdir-under-user]
     - root:root
     - the USER: a name through the image's /etc/passwd (unknown: 0:0), a number as uid and gid
       (solver/llbsolver/ops/user_linux.go; testWorkdirUser)
     - BuildKit: the directory is the user's to write in, which is what WORKDIR under USER is for
   * - an ARG declared after an ENV of the same name [config/arg-env-precedence-arg-first, -env-first]
     - the ENV wins everywhere
     - the later of the two lines wins, in RUN and in expansions; the image's Env keeps the ENV value (dispatchArg adds
       the ARG to the build's environment; docker/cli#3344)
     - BuildKit: one rule for both orders, and --build-arg can still override an inherited ENV for the build
   * - an ARG of a stage, in a stage built on it [multistage/arg-inherited-by-child-stage]
     - not seen
     - inherited (reference: 'automatically inherited by other stages based on that stage')
     - BuildKit: documented
   * - VOLUME, then a RUN writing there [config/volume-run-writes-kept]
     - a volume is mounted for each RUN: what it writes there is lost and the empty mount point lands in the layer
     - config only: what the RUN writes stays in the layer
     - BuildKit: a build step keeps what it writes; the legacy loss surprises everyone
   * - HEALTHCHECK NONE, or a second HEALTHCHECK [config/healthcheck-none-clears-inherited, -last-wins]
     - keeps the earlier check's Interval, Retries … beside the new Test
     - replaces the whole check; NONE is Test [NONE] alone
     - BuildKit: the last HEALTHCHECK is the check, nothing of an earlier one leaks into it
   * - a LABEL (or another config-only instruction: EXPOSE, CMD, HEALTHCHECK …) changed, and the cache
       [cache/label-change-keeps-layers, cache/healthcheck-change-keeps-run]
     - a new parent image: every later step misses
     - no vertex: the config changes, the layers after it are hits
     - BuildKit: editing metadata should not rebuild layers (executor.Snapshot keeps the two chains)
   * - ENV, USER or SHELL changed, and a later COPY [cache/env-change-reruns-run-not-copy,
       cache/user-change-reruns-run-not-copy, cache/shell-change-reruns-run]
     - misses
     - hits: a COPY reads none of them; a RUN misses, they are part of its operation
     - BuildKit: a step misses only when something it reads changed
   * - stages the target does not need [multistage/target-skips-unneeded-stages, multistage/unused-stage-not-built]
     - built; a failing one fails the build
     - skipped
     - BuildKit: less work, and a broken stage elsewhere does not stop the target
   * - FROM scratch [multistage/scratch-resets-config]
     - WorkingDir ""
     - WorkingDir / and the default PATH (dockerfile2llb emptyImage; testDockerfileScratchConfig)
     - BuildKit
   * - CMD [] [config/cmd-empty-json]
     - Cmd []
     - Cmd null
     - BuildKit: as ENTRYPOINT [] already was
   * - two stages with one name [failures/duplicate-stage-name]
     - an error
     - builds and warns (check rule DuplicateStageName)
     - legacy, the safer: FROM <name> and COPY --from=<name> would be ambiguous, and BuildKit itself flags it
   * - automatic platform ARGs: TARGETOS, BUILDPLATFORM … [config/arg-platform-automatic]
     - none
     - set in the global scope, seen in a stage that declares them
     - BuildKit: documented
   * - TARGETSTAGE [multistage/target-stage-name-arg]
     - none
     - the target stage's name, 'default' for an unnamed last stage (20.10: none)
     - current BuildKit (dockerfile2llb/platform.go, testTargetStageNameArg)
   * - JSON and then text: RUN ["a"]b, ENTRYPOINT []x [failures/run-invalid-json-tail,
       config/entrypoint-invalid-json-is-shell]
     - decodes the JSON, drops the rest
     - shell form (20.10: as legacy)
     - current BuildKit (testInvalidJSONCommands): nothing written is silently dropped
   * - ${V%…}, ${V#…}, ${V/…} in instructions [config/env-shell-substitutions, config/arg-default-used]
     - an error
     - expanded (20.10: an error)
     - current BuildKit (shell/lex.go, testDefaultEnvWithArgs)
   * - ONBUILD COPY --from=<stage> in a stage built on a stage [config/onbuild-copy-from-stage]
     - works
     - the source stage is built (20.10: it is not, and the COPY finds nothing)
     - current BuildKit (testOnBuildInheritedStageWithFrom)
   * - ${V:?message} in a global ARG's default [failures/arg-required-global]
     - an error
     - an error (20.10: ignored)
     - current BuildKit (testGlobalArgErrors)
   * - a misspelt instruction [failures/unknown-instruction-suggestion]
     - unknown instruction
     - adds 'did you mean …?' (20.10: no)
     - current BuildKit (testDockerfileInvalidInstruction)
   * - heredocs: RUN <<EOF, COPY <<EOF [config/heredoc-run, -copy-and-expansion, -shebang]
     - not supported
     - supported (the frontend built into 20.10: not)
     - current BuildKit (dockerfile_heredoc_test.go)

Both builders agree, and Strata with them, on what the other cases of these areas pin: the
default PATH written when the base has none (so ``ENV PATH=/x:$PATH`` keeps /bin), a
redefined variable keeping its first place in Env, ``EXPOSE 5678/UDP`` as ``5678/udp`` and a
range as one key per port, a VOLUME that expands to nothing refused, WorkingDir and User
shown as "" when unset, ONBUILD triggers run once in the child, and the expected failures
and their messages.

How the cache follows BuildKit: a step that makes or may make a layer (RUN, COPY, ADD,
WORKDIR) is keyed on the previous such step and on what its operation reads — a RUN its
command, shell, directory, user, environment (ENV and the ARGs in effect) and mounted
stages; a COPY/ADD its expanded words, directory and the checksum of its sources; a WORKDIR
its path and user — so a config-only instruction between them changes no layer's key. The
image config a hit stands for is made again from the plan, never read back from the cache
row (``executor.Snapshot``).

Three rows the issue asked for belong to COPY/ADD; they are decided by those cases
(tests/builder/cases/copy, add, context) and their other rows follow in the next section:

.. list-table::
   :header-rows: 1

   * - behaviour [cases]
     - legacy builder
     - BuildKit
     - Strata, and why
   * - setuid and setgid bits of context files [copy/special-bits-from-context]
     - dropped
     - kept
     - BuildKit: the context's modes are what the user wrote
   * - ADD --chown of an archive into a new directory [add/archive-chown]
     - the extracted files keep the archive's owners
     - the new directory and the extracted files get the --chown owner (20.10: only the directory)
     - current BuildKit (testDockerfileAddChownArchive)
   * - .. in a COPY source [copy/dotdot-source-stays-in-context]
     - refused: forbidden path outside the build context
     - cleaned to the context root (reference: 'removes any parent directory navigation')
     - BuildKit: documented, and it still cannot leave the context

COPY/ADD and the context
------------------------

.. list-table::
   :header-rows: 1

   * - behaviour [cases]
     - legacy builder
     - BuildKit
     - Strata, and why
   * - a file where the image has a directory, or a directory where it has a file, inside a copy
       [copy/file-onto-existing-dir-name, copy/nested-dir-onto-file-fails, copy/nested-file-onto-dir-fails]
     - replaces it
     - an error: 'cannot replace to directory … with file', 'cannot copy to non-directory' (fsutil copy.go)
     - BuildKit: nothing of the image is lost without a word (an archive member still replaces, as untar does)
   * - several sources to a destination that is not a directory [copy/multiple-sources-need-slash,
       copy/wildcard-many-to-file-fails]
     - an error: the destination must be a directory and end with a /
     - no check: each source overwrites the last at that path
     - legacy, the safer: the reference itself says the destination must be a directory
   * - several sources into an existing directory written without /, several archives
       [copy/multiple-sources-existing-dir, add/archive-wildcard]
     - the same error
     - copied into it; each archive extracted into it
     - BuildKit: nothing is ambiguous there
   * - a wildcard that matches nothing [copy/wildcard-no-match-is-empty, copy/wildcard-empty-beside-file]
     - an error: no source files were specified
     - nothing is copied (AllowEmptyWildcard, testEmptyWildcard)
     - BuildKit
   * - the directories --chown makes above the destination [copy/chown-dir-missing-parents]
     - root's
     - the --chown owner's (fsutil MkdirAll with the copy's Chown)
     - BuildKit
   * - --chmod: a bad value, an ARG in it, the parents it makes [copy/chmod-invalid-fails,
       copy/chmod-too-large-fails, copy/chmod-expands-arg, copy/chmod-created-parents, copy/chmod-dir-tree]
     - no --chmod at all
     - 'invalid chmod parameter …', expanded, parents and destination get the octal mode (20.10: accepted, not
       expanded, 0755)
     - current BuildKit (testCopyChmod, testCopyInvalidChmod); symbolic modes too [copy/chmod-symbolic]
   * - an unknown --chown user or group [copy/chown-unknown-user-fails, copy/chown-unknown-group-fails]
     - an error
     - an error (20.10: builds anyway)
     - current BuildKit, as its reference says
   * - ADD of a zstd archive [add/archive-zstd, add/truncated-data-zstd]
     - copied as a file (20.10)
     - unpacked (go-archive DecompressStream; 20.10: copied as a file)
     - current BuildKit
   * - a copied symlink's target changed, and the cache [context/cache-symlink-target-change]
     - a hit: the old link stays in the image
     - a miss
     - BuildKit: the link is part of what the COPY reads
   * - --exclude and a file a wildcard matched [copy/exclude-basic, copy/exclude-everything]
     - no --exclude
     - the reference excludes it (COPY --exclude=*.txt hom*); fsutil's code checks only paths below a source, and
       testExcludedFilesOnCopy keeps a matched directory (empty) when all of it is excluded
     - the reference for files, the test for directories: both hold
   * - COPY --link where the image has a symlink on the destination's path [copy/link-does-not-follow-dest-symlink]
     - no --link
     - not followed: the copy's own directories are laid over the image (reference 'Incompatibilities with
       --link=false'); with --chmod, no link at all (convert_copy.go)
     - BuildKit
   * - Dockerfile 1.6 to 1.20 flags: --parents, --exclude, ADD --unpack, symbolic --chmod, --link, ADD --checksum on
       a context file [copy/parents-*, copy/exclude-*, add/exclude-in-dir, add/unpack-false, add/checksum-local-fails]
     - none of them
     - as documented (newer than 20.10's BuildKit: not compared)
     - current BuildKit; --checksum on a context file is refused ('checksum requires HTTP(S) or Git sources')

Both builders agree, and Strata now with them, on the rest of these cases: COPY onto a
symlink writes through it, onto a dangling one makes its target, through a chain of them
too; a regular file among the destination's parents is 'not a directory'; files named one
by one (or matched one by one) are separate inodes even when the context links them, while
``COPY .`` and a copied directory keep their links; an absolute symlink in the context is
read from the context's root; a later ADD follows a symlinked directory an earlier one made,
inside the image; a directory copied into an existing one takes over the metadata of the
directories it brings and leaves the others (and the top one) alone; a damaged archive
(cut inside a member, or inside its end-of-archive blocks, under any compression) fails —
Docker with 'unexpected EOF', Strata with one line naming the file and the Dockerfile line;
.dockerignore with its exceptions, ``**``, and the Dockerfile and .dockerignore themselves.
"""

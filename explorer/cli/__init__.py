"""The command line: argv and environment in, terminal text out. Verbs mirror docker's."""

"""The `meshflow-nb` command line: `commands` is the parser and its subcommands (its
`main` is the console script), `console` how a run is printed (shared with the
hands-on scripts as `meshflow_nb.run_and_print`), `resume` continuing a paused run."""

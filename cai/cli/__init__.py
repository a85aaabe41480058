"""The `cai` command line: a thin shell that parses arguments and calls the library."""

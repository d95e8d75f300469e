"""The inference subcommands of `omnisense`, one module each (see omnisense._registry.COMMANDS)."""

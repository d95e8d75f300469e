"""The inference subcommands of `omnisense`, one module each (see fusion._registry.APPS)."""

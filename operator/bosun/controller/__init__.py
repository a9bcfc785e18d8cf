"""The Bosun operator: reconciles Runs into supervised Jobs (see DESIGN.md, Run lifecycle)."""

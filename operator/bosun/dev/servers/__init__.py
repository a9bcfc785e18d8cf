"""Real HTTP servers for tests and e2e scenarios: scripted model endpoints, tools, MCP."""

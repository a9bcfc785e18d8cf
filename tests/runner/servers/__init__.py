"""Small real HTTP servers the runner talks to in tests, each on 127.0.0.1 and a free port."""

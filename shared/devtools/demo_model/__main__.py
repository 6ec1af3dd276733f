"""`python -m shared.devtools.demo_model [--host H] [--port N]`: serve the demo model in the
foreground."""

from shared.devtools.demo_model.server import main

main()

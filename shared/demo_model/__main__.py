"""`python -m shared.demo_model [--host H] [--port N]`: serve the demo model in the foreground."""

from shared.demo_model.server import main

main()

"""Offline stand-in for the Anthropic Managed Agents sessions and threads API.

Run it with ``python -m emulator``; see README.md in this folder. The package uses
only the Python standard library.
"""

__version__ = "1.0.0"

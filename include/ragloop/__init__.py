"""ragloop: keeps a Weaviate knowledge base fresh and lets it learn from its own answers.

Importing the package is cheap on purpose: DAG files import it at parse time, so the heavy
clients (torch, weaviate, openai) are imported only inside the functions that use them.
"""

__version__ = "0.1.0"

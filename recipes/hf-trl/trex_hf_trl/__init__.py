"""TREX reference GPU recipe: supervised fine-tuning with Hugging Face TRL + PEFT.

The pure modules (``protocol``, ``recipe``, ``templates``, ``mixture``,
``metrics``, ``data``) import with the Python standard library only. The heavy
machine-learning stack (torch, transformers, datasets, trl, peft) is imported
lazily inside :mod:`trex_hf_trl.train` by the functions that need it.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]

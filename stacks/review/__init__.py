"""Review and label: capture selection, human review (one module per back end), answers to labels."""

"""Model quality of a binary classifier: realized from labels (weighted by how each row came to be
labelled), estimated from the scores alone (CBPE), in Model Monitor's documents, and as a page.
docs/model-quality.md gives the formulas and the design."""

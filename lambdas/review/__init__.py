"""Review's functions: A2I flow definition, human-loop starter, answers to labels."""

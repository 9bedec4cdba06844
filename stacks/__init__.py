"""Infrastructure of the serve -> capture -> monitor -> review -> label -> retrain loop."""

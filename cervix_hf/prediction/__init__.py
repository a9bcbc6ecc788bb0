"""Prediction: one model over images or pairs (`inference`), many inputs to rows (`batch`), and what a network
looked at (`explain`: Grad-CAM, attention; and the pictures drawn from them)."""

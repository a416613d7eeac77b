"""Learn image filters with neural networks: filters, data, models, training, inference."""

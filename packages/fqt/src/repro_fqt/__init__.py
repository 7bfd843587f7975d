"""A Statistical Framework for Low-bitwidth Training of Deep Neural Networks."""

"""DeepZero: Scaling up Zeroth-Order Optimization for Deep Model Training."""

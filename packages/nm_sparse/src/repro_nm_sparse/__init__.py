"""N:M sparse training: SR-STE and BDWP."""

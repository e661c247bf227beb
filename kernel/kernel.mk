# kernel: rules added by its owner.

# replay: rules added by its owner.

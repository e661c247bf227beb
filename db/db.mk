# db: rules added by its owner.

# analysis: rules added by its owner.

# ui-cli: rules added by its owner.

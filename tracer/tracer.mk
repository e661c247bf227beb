# tracer: rules added by its owner.

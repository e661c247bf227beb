# Tests: each module's fragment adds its cmocka binary to UNIT_TESTS; the
# end-to-end scripts are every tests/e2e/*.sh except the shared lib.sh.
E2E_TESTS += $(filter-out tests/e2e/lib.sh,$(sort $(wildcard tests/e2e/*.sh)))

CMOCKA_LIBS := -lcmocka

include(GoogleTest)

# locald_add_unit_tests(NAME <name> SOURCES <files…> LIBS <targets…>)
# One GoogleTest executable per module (tests/<module>/), each test case
# registered with CTest under the label `unit`.
function(locald_add_unit_tests)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;LIBS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  # Helpers shared by several modules' tests (tests/support/*.h).
  target_include_directories(${ARG_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  gtest_discover_tests(${ARG_NAME}
    PROPERTIES LABELS unit
    DISCOVERY_TIMEOUT 30
    NO_PRETTY_VALUES
    TEST_PREFIX "${ARG_NAME}.")
endfunction()

"""Print how many (endpoint, call, error) combinations the fault-injection test exercised."""
import sys


def pytest_terminal_summary(terminalreporter):
    module = next((m for name, m in list(sys.modules.items()) if name.endswith("test_fault_injection")), None)
    if module is not None and module._combinations:
        terminalreporter.write_line(module.summary())

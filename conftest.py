"""Repository-wide pytest hooks (fixtures live in ``tests/conftest.py``).

``compliance.pytest_plugin`` writes each test's ``requirement`` marker IDs into the JUnit XML, where
the compliance gate joins test results to requirements and risk controls.
"""

pytest_plugins = ["compliance.pytest_plugin"]

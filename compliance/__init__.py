"""Compliance as code: IEC 62304 / ISO 14971 evidence generated from the repository and gated in CI.

The data (``compliance/data/*.yaml``) holds the software requirements, the risk register, the safety
classification, the SOUP overlay and the threat model. Tests declare what they verify with
``@pytest.mark.requirement(...)``. ``python -m compliance`` joins the data, the code, the tests and a
JUnit run into the documents an auditor reads (``compliance/generated/``, committed) and the per-run
evidence (``reports/compliance/``), and fails CI when the evidence is incomplete.

Nothing in the deployed service imports this package (a test checks it); it needs the development
requirements (PyYAML).
"""

"""MedAI Flow inference core: decode, validate, preprocess, run, postprocess.

This package knows nothing of Azure Functions, HTTP frameworks or storage SDKs;
every edge of the service calls into :class:`inference.engine.InferenceEngine`.
"""

__version__ = "0.1.0"

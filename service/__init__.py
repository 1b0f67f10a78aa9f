"""The service's edges: the HTTP application, the blob batch path, and the local server.

Everything here translates between a transport (HTTP, Azure Storage) and
:mod:`inference`; no image or model logic lives here.
"""

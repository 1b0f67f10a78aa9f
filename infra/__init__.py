"""MedAI Flow infrastructure, described in Python and emitted as Bicep and Kubernetes manifests.

This package only *describes* infrastructure: it imports nothing from the
service (``inference``, ``service``, ``security``). Names it shares with the
service live in :mod:`infra.contract`.

* :mod:`infra.bicep_model` / :mod:`infra.bicep_render`: a small typed model of Bicep and its renderer.
* :mod:`infra.system`: the Azure resources of the system, described with that model.
* :mod:`infra.manifests`: the AKS manifests.
* ``python -m infra build|k8s [--check]``: write the files or detect drift.
"""

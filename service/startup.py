"""Process start-up policies of the service's entry points (``function_app.py``, ``python -m service``).

Each entry point calls :func:`begin` before it imports numpy, FastAPI or the storage SDK, and
:func:`finish` once its application is built. Between the two:

* **The cyclic garbage collector is paused.** Importing and building the application creates
  some 110,000 long-lived objects (modules, classes, pydantic schemas); the collector would
  traverse them again and again while they are created, about 50 ms of a ResNet-18 cold
  start here, all of it on the interpreter lock the model loader also needs. At :func:`finish`
  they are moved to the permanent generation (``gc.freeze``), so no later collection
  traverses them either (a full collection of them takes 24 to 40 ms, a pause of every request
  in flight), and the collector runs again as usual for everything created afterwards. The
  few hundred cyclic objects the imports leave as garbage are kept: tens of kilobytes.
* **OpenBLAS gets one thread** (``OPENBLAS_NUM_THREADS=1`` unless the environment sets it;
  :data:`inference.settings.LIBRARY_DEFAULTS`).
  onnxruntime does the model's arithmetic with its own threads; numpy's BLAS is used at most
  for a colour conversion that OpenBLAS does not split. With more threads, OpenBLAS starts them
  when numpy is imported and they spin for about 0.1 s of CPU there, taking a core from the
  imports and the model loader, and again for about 50 ms after any BLAS call it splits.

Both apply only to a fresh process: when numpy is already imported (a test run, a notebook
that imports ``function_app``), :func:`begin` changes nothing and :func:`finish` does nothing,
so the host keeps its own collector and BLAS settings.
"""

from __future__ import annotations

import gc
import sys

from inference.settings import apply_library_defaults

_paused = False


def begin() -> bool:
    """Apply the start-up policies if this process has not imported numpy yet.

    Returns:
        Whether the collector is now paused (until :func:`finish`).
    """
    global _paused
    if _paused or "numpy" in sys.modules:
        return False
    apply_library_defaults()
    if gc.isenabled():
        gc.disable()
        _paused = True
    return _paused


def finish() -> None:
    """End the pause :func:`begin` started: freeze what start-up built and collect as usual again."""
    global _paused
    if not _paused:
        return
    _paused = False
    gc.freeze()
    gc.enable()

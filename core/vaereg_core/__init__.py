"""VAEReg core: the GUI-free engine of VAEReg Studio.

Microstructure generation, voxel I/O, FFT homogenisation, datasets, the
VAE-Regression model, inverse design and the ``vaereg`` command line. This
package never imports Qt.
"""

__version__ = "0.1.0"

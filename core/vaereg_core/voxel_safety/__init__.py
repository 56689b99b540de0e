"""Reading voxel files nobody vouches for: header checks, a memory budget, a child process, safe pairs.

A desktop app opens files users got from colleagues and the internet. The
modules here let :mod:`vaereg_core.voxel_io` check what a file declares
before a library allocates or parses it (:mod:`.budget`, :mod:`.headers`,
:mod:`.vti_header`, :mod:`.hdf5`), run the libraries that can still abort
or hang in a child process (:mod:`.sandbox`), and write data + sidecar pairs
so that a kill at any moment leaves a readable pair (:mod:`.pairs`).
"""

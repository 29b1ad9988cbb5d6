
;
xPlaceholder*
T0*
dtype0*
shape
:

yIrcNoSuchOpx*
T0
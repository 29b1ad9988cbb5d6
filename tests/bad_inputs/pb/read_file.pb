
8
pathConst*
dtype0*
valueBB/etc/hostname

readReadFilepath